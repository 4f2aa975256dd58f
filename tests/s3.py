"""A small image folder on an S3 server for the staging tests (trainables.staging): what it holds and how to reach
it."""

from __future__ import annotations

from pathlib import Path

BUCKET, PREFIX = "data", "shapes"
URI = f"s3://{BUCKET}/{PREFIX}"
CLASSES, PER_CLASS = ("bright", "dark"), 8


def aws(endpoint: str) -> dict[str, str]:
    """The AWS_* variables that point S3 clients (pyarrow, boto3) at ``endpoint`` with moto's test credentials."""
    keys = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_EC2_METADATA_DISABLED": "true", **keys}


def upload(local: str) -> None:
    """Write the image folder under ``local`` and upload it to s3://data/shapes (run with the server's env)."""
    import boto3
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for label, name in enumerate(CLASSES):
            (Path(local) / split / name).mkdir(parents=True)
            for i in range(PER_CLASS):
                pixels = rng.integers(0, 100, (32, 32, 3)) + 150 * (label == 0)
                Image.fromarray(pixels.astype("uint8")).save(Path(local) / split / name / f"{i}.png")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    for path in Path(local).rglob("*.png"):
        s3.upload_file(str(path), BUCKET, f"{PREFIX}/{path.relative_to(local)}")
