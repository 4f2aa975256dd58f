"""The search's champion as an MLflow model (MLflow's PyTorch flavour), beside the weights and config of its run's
``model/`` folder, so ``mlflow.pytorch.load_model``, ``mlflow models serve`` and the registry's model page work on
``models:/NAME@champion`` while ``t2t.load_pretrained`` keeps reading ``model.pt``.

The model is saved as ``torch.export``'s program (MLflow's default format): loading it unpickles no code. Its pip
requirements are this environment's versions, written without resolving anything over the network.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

EXAMPLE_BATCH = 2  # a batch of one would export a fixed batch size; two keep it free


def requirements() -> list[str]:
    """The pins a served model needs besides MLflow (which MLflow adds): torch and numpy as installed here."""
    import numpy
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={numpy.__version__}"]


def save_mlflow_model(model_config: dict[str, Any], weights: dict[str, Any], folder: Path) -> None:
    """MLflow's PyTorch flavour of the T2T-ViT ``model_config`` (a ``T2TConfig`` as a dict) with ``weights``, its
    files added to ``folder``: a signature and an input example of the model's image size (float32 images, batch
    first; the outputs are the class scores)."""
    import mlflow.pytorch
    import numpy as np

    import t2t

    config = t2t.T2TConfig(**model_config)
    model = t2t.T2TViT(config)
    model.load_state_dict(weights)
    model.eval()
    example = np.zeros((EXAMPLE_BATCH, config.in_chans, *config.img_size), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "mlflow_model"
        mlflow.pytorch.save_model(  # pt2 named: MLflow's default turns to pickle under some tracking URIs
            model, str(saved), input_example=example, pip_requirements=requirements(), serialization_format="pt2"
        )
        for entry in saved.iterdir():
            shutil.move(str(entry), str(folder / entry.name))
