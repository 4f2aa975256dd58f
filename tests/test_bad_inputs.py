"""Every mistake a user can make at the four entry points is one line on stderr, exit 2, and nothing written.

Each case runs in-process through the entry point's ``main([...])`` in an empty working directory holding only the
files the case needs; after it, that directory is exactly as before (no mlflow.db, no ray_results, no study, no
output folder) and Ray was never started.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import pytest
import torch

from analysis.report import main as report_main
from search.cluster.__main__ import main as cluster_main
from search.run import main as search_main
from trainables.train import main as train_main


def _sets(*assignments: str) -> list[str]:
    """``--set A --set B ...``."""
    return [arg for a in assignments for arg in ("--set", a)]


ENTRY = {"search": search_main, "train": train_main, "report": report_main, "cluster": cluster_main}


class _Code:
    """A pickle whose loading would call print: weights_only must refuse it before it runs."""

    def __reduce__(self):
        return (print, ("the payload ran",))


def make_files(tmp: Path) -> None:
    """The bad files the cases name, relative to ``tmp``."""
    (tmp / "binary.yaml").write_bytes(b"\x00\x01\x02model: {}\n")
    (tmp / "latin1.yaml").write_bytes("model: {name: t2t_vit_mini}  # caf\xe9\n".encode("latin-1"))
    (tmp / "dup.yaml").write_text("train: {epochs: 3}\ntrain: {epochs: 4}\n")
    (tmp / "list.yaml").write_text("- 1\n- 2\n")
    cluster = (Path(__file__).resolve().parents[1] / "cluster.yaml").read_text()
    (tmp / "negative.yaml").write_text(re.sub(r"(?m)^max_workers: .*$", "max_workers: -1", cluster))
    (tmp / "bad.yaml").write_text("model: [\n")
    laughs = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]  # 10**12 strings once expanded, from 11 aliases x 10
    laughs += [f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]" for p, n in zip("abcdefghijk", "bcdefghijkl", strict=True)]
    (tmp / "laughs.yaml").write_text("\n".join(laughs) + "\n")
    (tmp / "text.pth").write_text("not a checkpoint\n")
    torch.save({"w": _Code()}, tmp / "code.pth")
    torch.save(_mini_state(), tmp / "other_arch.pth")
    (tmp / "run" / "checkpoint.pt").parent.mkdir()
    (tmp / "run" / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    (tmp / "plain_ckpt").mkdir()
    torch.save({"just": torch.zeros(1)}, tmp / "plain_ckpt" / "checkpoint.pt")
    (tmp / "afile").write_text("x")
    (tmp / "notdb.db").write_text("hello, not sqlite\n")
    (tmp / "dbdir").mkdir()
    (tmp / "cifar" / "cifar-10-batches-py").mkdir(parents=True)
    for split in ("train/a", "train/b", "val/a", "val/b"):
        (tmp / "noimages" / split).mkdir(parents=True)
        (tmp / "noimages" / split / "readme.txt").write_text("no image here")


def _mini_state() -> dict:
    import t2t

    return t2t.create_model("t2t_vit_test", img_size=32, in_chans=1, num_classes=10).state_dict()


TRACK = "sqlite:///{tmp}/mlflow.db"
CONDITIONAL = "space.model.performer_drop={type: float, low: 0, high: 0.1, when: {model.tokens_type: performer}}"
CASES = [  # (entry point, argv, the fragment stderr must hold)
    # --- search.run: config files ---
    ("search", ["--config", "binary.yaml"], "binary.yaml is a binary file"),
    ("search", ["--config", "latin1.yaml"], "latin1.yaml is not UTF-8"),
    ("search", ["--config", "dup.yaml"], "key 'train' is given twice"),
    ("search", ["--config", "list.yaml"], "must hold a mapping of sections"),
    ("search", ["--config", "bad.yaml"], "bad.yaml is not valid YAML"),
    ("search", ["--config", "laughs.yaml"], "more than 100 YAML aliases"),
    ("search", ["--config", "dbdir"], "dbdir is not a file"),
    ("search", ["--config", "nope.yaml"], "config file not found: nope.yaml"),
    # --- search.run: values read as meant ---
    ("search", ["--set", "base.model.qkv_bias='false'"], "qkv_bias must be true or false"),
    ("search", ["--set", "base.model.fused_attn=2"], "fused_attn must be true or false"),
    ("search", ["--set", "search.num_trials=true"], "search.num_trials: Input should be a valid integer"),
    ("search", ["--set", "base.train.epochs=true"], "base.train.epochs: Input should be a valid integer"),
    ("search", ["--set", "base.data.augment=yes"], "base.data.augment: Input should be a valid boolean"),
    ("search", ["--set", "base.train.epochs=3.5"], "base.train.epochs: Input should be a valid integer"),
    ("search", ["--set", "base.model.mlp_ratio=x"], "mlp_ratio must be a number"),
    ("search", ["--set", "base.train.seed=1180591620717411303424"], "base.train.seed: Input should be less than"),
    ("search", ["--set", "search.seed=-1"], "search.seed: Input should be greater than or equal to 0"),
    ("search", ["--set", "base.model.drop_path_rate=1e0"], "drop_path_rate must be a number in [0, 1)"),
    ("search", ["--set", "base.optim.lr={a: 1"], "--set base.optim.lr is not valid YAML"),
    ("search", ["--set", "search.num_trial=3"], "search.num_trial: unknown key; did you mean 'num_trials'"),
    ("search", ["--set", "base.optim.lrr=0.1"], "base.optim.lrr: unknown key"),
    ("search", ["--set", "base.optim.lr=-1"], "base.optim.lr: Input should be greater than 0"),
    ("search", ["--set", "base.model.name=t2t_vit_99"], "unknown model 't2t_vit_99'"),
    ("search", ["--set", "base.model.num_classes=3"], "model.num_classes is set by the data set"),
    ("search", ["--set", "search.scheduler=hyperband"], "search.scheduler: Input should be 'asha' or 'none'"),
    ("search", ["--set", "search.num_trials"], "--set expects key=value"),
    ("search", ["--name", "my search!"], "name must be letters, digits"),
    ("search", ["--bogus"], "unrecognized arguments: --bogus"),
    # --- search.run: the space ---
    ("search", ["--set", "space={}"], "space has no distribution"),
    ("search", ["--set", "space={train.seed: 1}"], "space has no distribution"),
    (
        "search",
        ["--set", "space.model.depth={type: int, low: 2, high: 4, when: {model.depth: 3}}"],
        "space.model.depth.when refers to 'model.depth'",
    ),
    (
        "search",
        ["--set", "base.train.epochs=1"],
        "search.grace_period=2 exceeds the epochs the shortest trial trains (1",
    ),
    ("search", ["--set", "space.train.epochs={type: int, low: 1, high: 9}"], "the shortest trial trains (1)"),
    ("search", ["--set", "search.multi_objective=true"], "search.multi_objective=true with search.scheduler=asha"),
    ("search", ["--set", "base.train.evaluate_test=true"], "train.evaluate_test is the final phase's own"),
    ("search", ["--set", "space.train.evaluate_test=true"], "train.evaluate_test is the final phase's own"),
    ("search", ["--set", "space.data.split_seed={type: int, low: 0, high: 3}"], "space varies data.split_seed, which"),
    ("search", ["--set", "space.data.name={type: choice, values: [digits, synthetic]}"], "space varies data.name"),
    ("search", ["--set", "search.final.seeds=1"], "search.final.seeds"),
    ("search", ["--set", "search.final.top_k=0"], "search.final.top_k"),
    ("search", ["--set", "search.final.topk=2"], "search.final.topk"),
    ("search", ["--set", "search.grace_period=11"], "search.grace_period=11 exceeds"),
    ("search", ["--set", "space.model.depth={type: int, low: 5, high: 2}"], "low must be below high"),
    ("search", ["--set", "space.model.depth={type: integer, low: 1, high: 3}"], "Input tag 'integer'"),
    ("search", ["--set", "space.model.depth=[1, 2]"], "a list is not a distribution"),
    ("search", ["--set", "space.foo.depth=3"], "space key 'foo.depth' must be section.key"),
    (
        "search",
        ["--set", "space.model.drop_path_rate={type: float, low: 0, high: 2}"],
        "space.model.drop_path_rate=2.0 gives an invalid config",
    ),
    (
        "search",
        ["--set", "space.model.performer_drop={type: float, low: 0, high: 0.2, when: {model.tokens: x}}"],
        "when refers to 'model.tokens'",
    ),
    (
        "search",
        ["--set", "search.head_dim=null", "--set", "space.model.num_heads={type: choice, values: [3]}"],
        "embed_dim must be divisible by num_heads, got embed_dim=128 num_heads=3",
    ),
    ("search", ["--set", "search.head_dim=48"], "search.head_dim=48 does not divide model.embed_dim 128"),
    ("search", ["--set", "search.max_params=1000"], "search.max_params=1,000 is below the cheapest configuration"),
    ("search", ["--set", "search.max_macs=1000"], "search.max_macs=1,000 is below the cheapest configuration"),
    # --- search.run: data ---
    ("search", ["--set", "base.data.val_fraction=0.99"], "data.val_fraction=0.99 plus data.test_fraction=0.2 must be"),
    ("search", ["--set", "base.data.val_fraction=0.78"], "of 1797 digits images: the training set has 36 images"),
    ("search", ["--set", "base.data.val_fraction=0.001"], "the validation set is empty"),
    ("search", ["--set", "base.data.test_fraction=0.001"], "the test set is empty"),
    (
        "search",
        ["--set", "base.data.name=synthetic", "--set", "base.data.synthetic_samples=40"],
        "training set has 20 images, below one batch",
    ),
    ("search", ["--set", "base.data.name=cifar10", "--set", "base.data.root=cifar"], "lacks data_batch_1"),
    ("search", ["--set", "base.data.name=cifar10", "--set", "base.data.root=nowhere"], "CIFAR-10 not found in"),
    ("search", ["--set", "base.data.name=imagefolder", "--set", "base.data.root=noimages"], "holds no images"),
    ("search", ["--set", "base.data.name=imagefolder", "--set", "base.data.root=nowhere"], "image folder"),
    (
        "search",
        ["--set", "space.data.val_fraction={type: float, low: 0.1, high: 0.99}"],
        "space.data.val_fraction=0.99 gives an invalid config: data: data.val_fraction=0.99 plus",
    ),
    (
        "search",
        ["--set", "space.data.batch_size={type: choice, values: [64, 4096]}"],
        "space.data.batch_size=4096: data.val_fraction=0.2 and data.test_fraction=0.2 of 1797 digits images: the "
        "training set has 1079",
    ),
    # --- search.run: the checkpoint ---
    ("search", ["--set", "base.model.pretrained=nope.pth"], "base.model.pretrained: checkpoint file not found"),
    ("search", ["--set", "base.model.pretrained=text.pth"], "base.model.pretrained: text.pth is not a torch"),
    ("search", ["--set", "base.model.pretrained=code.pth"], "holds objects other than tensors"),
    ("search", ["--set", "base.model.pretrained=other_arch.pth"], "has shape"),
    (
        "search",
        [
            "--set",
            "base.model.name=t2t_vit_test",
            "--set",
            "base.model.pretrained=other_arch.pth",
            "--set",
            "search.head_dim=null",
            "--set",
            "space={model.embed_dim: {type: choice, values: [32, 64]}}",
        ],
        "space.model.embed_dim=64: base.model.pretrained: other_arch.pth: checkpoint tensor",
    ),
    # --- search.run: tracking store, storage, address ---
    ("search", ["--set", "tracking_uri=sqlite:///"], "in-memory sqlite store"),
    ("search", ["--set", "tracking_uri=sqlite://"], "in-memory sqlite store"),
    ("search", ["--set", "tracking_uri='sqlite:///:memory:'"], "in-memory sqlite store"),
    ("search", ["--set", "tracking_uri=sqlite://x.db"], "tracking URI sqlite://x.db is not a file sqlite store"),
    ("search", ["--set", "tracking_uri=sqlite:///{tmp}/dbdir"], "is a folder, not a database file"),
    ("search", ["--set", "tracking_uri=sqlite:///{tmp}/notdb.db"], "is not an sqlite database"),
    ("search", ["--set", "tracking_uri=sqlite:///{tmp}/no/such/mlflow.db"], "folder {tmp}/no/such is missing"),
    ("search", ["--set", "tracking_uri=postgresql://u@127.0.0.1:1/db"], "cannot connect to the tracking database"),
    ("search", ["--set", "tracking_uri=mysql://u@127.0.0.1/db"], "database driver"),
    ("search", ["--set", "tracking_uri=ftp://127.0.0.1/x"], "unknown scheme 'ftp'"),
    ("search", ["--set", "tracking_uri=http//127.0.0.1:9"], "lacks the ':' after its scheme"),
    ("search", ["--set", "tracking_uri=http://127.0.0.1:9"], "cannot reach the MLflow tracking server"),
    ("search", ["--set", "tracking_uri=./mlruns"], "legacy file store"),
    ("search", ["--storage-path", "ftp://host/x"], "--storage-path ftp://host/x: unknown scheme 'ftp'"),
    ("search", ["--storage-path", "afile/results"], "is not a folder"),
    ("search", ["--storage-path", "/proc/t2t-search-x"], "no folder can be made in /proc"),  # also as root
    ("search", ["--address", "127.0.0.1:9"], "--address 127.0.0.1:9: no Ray cluster answers"),
    ("search", ["--address", "nonsense"], "expected auto, HOST:PORT"),
    ("search", ["--name", "never-ran", "--resume"], "nothing to resume: no experiment at"),
    ("search", ["--set", "search.warm_start=sqlite:///nowhere/optuna.db"], "search.warm_start: no study file"),
    # --- search.run, a population (search.mode pbt or pb2) ---
    ("search", _sets("search.mode=pbt", "search.population.mutable=[model.depth]"),
     "search.population.mutable: model.depth cannot change while a member trains"),
    ("search", _sets("search.mode=pbt", "search.population.mutable=[optim.clip_grad]"),
     "optim.clip_grad has no distribution in space"),
    ("search", _sets("search.mode=pb2", "space.train.label_smoothing={type: choice, values: [0.0, 0.1]}",
                     "search.population.mutable=[train.label_smoothing]"), "search.mode=pb2 takes ranges only"),
    ("search", _sets("search.mode=pbt", "search.population.mutable=[model.performer_drop]", CONDITIONAL),
     "model.performer_drop is conditional"),
    ("search", _sets("search.mode=pbt", "search.population.interval=4"),
     "search.population.interval=4 is not below base.train.epochs=4"),
    ("search", _sets("search.mode=pbt", "search.population.size=1"),
     "search.population.size: Input should be greater than or equal to 2"),
    ("search", _sets("search.mode=pbt", "space.train.epochs={type: int, low: 2, high: 4}"),
     "space varies train.epochs"),
    ("search", ["--set", "search.mode=pb2", "--set", "search.multi_objective=true"], "ranks members on val_acc alone"),
    ("search", ["--set", "search.population.size=8"], "search.mode=study trains no population"),
    ("search", ["--set", "search.mode=evolution"], "search.mode"),
    # --- search.run, trials on several processes ---
    ("search", _sets("search.workers_per_trial=2", "search.mode=pbt"), "a population's members train on one process"),
    ("search", _sets("search.workers_per_trial=2", "search.gpus_per_trial=1"),
     "search.workers_per_trial=2 with search.gpus_per_trial=1: each worker trains on one GPU of its own"),
    ("search", _sets("search.workers_per_trial=2", "search.gpus_per_trial=4"), "set search.gpus_per_trial=2 (or 0)"),
    ("search", _sets("search.workers_per_trial=2", "space.data.batch_size={type: int, low: 16, high: 64, log: true}"),
     "space.data.batch_size a range: give it as a choice of multiples of 2"),
    ("search", _sets("search.workers_per_trial=2", "base.data.batch_size=33"),
     "search.workers_per_trial=2 with data.batch_size=33: each worker trains an equal share of every batch"),
    ("search", _sets("search.workers_per_trial=4", "space.data.batch_size={type: choice, values: [32, 66]}"),
     "data.batch_size=66"),
    ("search", ["--set", "search.workers_per_trial=0"], "search.workers_per_trial: Input should be greater than"),
    # --- trainables.train ---
    ("train", ["--config", "binary.yaml"], "binary.yaml is a binary file"),
    ("train", ["--config", "latin1.yaml"], "latin1.yaml is not UTF-8"),
    ("train", ["--config", "dup.yaml"], "key 'train' is given twice"),
    ("train", ["--config", "laughs.yaml"], "more than 100 YAML aliases"),
    ("train", ["--config", "nope.yaml"], "config file not found"),
    ("train", ["--set", 'model.qkv_bias="false"'], "qkv_bias must be true or false"),
    ("train", ["--set", "train.seed=4294967296"], "train.seed: Input should be less than or equal to 4294967295"),
    ("train", ["--set", "data.val_fraction=0.99"], "data.val_fraction=0.99"),
    ("train", ["--set", "model.pretrained=nope.pth"], "model.pretrained: checkpoint file not found"),
    ("train", ["--set", "model.pretrained=dbdir"], "model.pretrained: dbdir is not a file"),
    ("train", ["--set", "model.pretrained=text.pth"], "is not a torch checkpoint"),
    ("train", ["--set", "model.pretrained=code.pth"], "holds objects other than tensors"),
    ("train", ["--set", "model.pretrained=other_arch.pth"], "the checkpoint is of another architecture"),
    ("train", ["--output-dir", "afile"], "--output-dir afile is a file"),
    ("train", ["--output-dir", "afile/sub"], "afile is not a writable folder"),
    ("train", ["--output-dir", "run"], "run already holds a run: pass --resume"),
    ("train", ["--output-dir", "run", "--resume"], "--resume: run/checkpoint.pt is not a torch checkpoint"),
    ("train", ["--output-dir", "plain_ckpt", "--resume"], "is not a checkpoint of trainables.train"),
    ("train", ["--output-dir", "fresh", "--resume"], "nothing to resume"),
    ("train", ["--schedule", "nope.json"], "--schedule: no file at nope.json"),
    ("train", ["--schedule", "list.yaml"], "--schedule: list.yaml is not a schedule.json"),
    ("train", ["--set", "data.name=imagefolder", "--set", "data.root=noimages"], "holds no images"),
    ("train", ["--set", "data.name=cifar100", "--set", "data.root=cifar"], "CIFAR-100 not found"),
    # --- analysis.report ---
    ("report", ["t2t-search"], "no database at mlflow.db"),
    ("report", ["t2t-search", "--tracking-uri", "sqlite:///"], "in-memory sqlite store"),
    ("report", ["t2t-search", "--tracking-uri", "sqlite:///{tmp}/notdb.db"], "is not an sqlite database"),
    ("report", ["t2t-search", "--tracking-uri", "sqlite:///{tmp}/dbdir"], "is a folder"),
    ("report", ["t2t-search", "--tracking-uri", "http://127.0.0.1:9"], "cannot reach the MLflow tracking server"),
    ("report", ["t2t-search", "--tracking-uri", "postgresql://u@127.0.0.1:1/db"], "cannot connect to the tracking"),
    ("report", ["t2t-search", "--output-dir", "afile"], "--output-dir afile: afile is not a writable folder"),
    ("report", ["t2t-search", "--format", "pdf"], "unknown format ['pdf']"),
    # --- search.cluster check ---
    ("cluster", ["check", "binary.yaml"], "binary.yaml is a binary file"),
    ("cluster", ["check", "latin1.yaml"], "latin1.yaml is not UTF-8"),
    ("cluster", ["check", "dup.yaml"], "key 'train' is given twice"),
    ("cluster", ["check", "laughs.yaml"], "more than 100 YAML aliases"),
    ("cluster", ["check", "nope.yaml"], "config file not found: nope.yaml"),
    ("cluster", ["check", "list.yaml"], "list.yaml must hold a YAML mapping"),
    ("cluster", ["check", "negative.yaml"], "negative.yaml: Ray rejects it: -1 is less than the minimum of 0"),
    ("cluster", ["check", "bad.yaml"], "bad.yaml is not valid YAML"),
    ("cluster", ["bogus"], "invalid choice: 'bogus'"),
]  # fmt: skip


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


@pytest.mark.parametrize("entry, argv, message", CASES, ids=[f"{e}:{' '.join(a)}"[:80] for e, a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(entry, argv, message, tmp_path, monkeypatch, capsys):
    import ray

    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "T2T_STORAGE_PATH", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.delenv(name, raising=False)
    make_files(tmp_path)
    before = _snapshot(tmp_path)
    # what the entry points log goes to the captured stderr too: a warning or info line before the error counts
    monkeypatch.setattr(logging.root, "handlers", [logging.StreamHandler(sys.stderr)])
    monkeypatch.setattr(logging.root, "level", logging.INFO)
    ray_inits: list = []  # a spy that calls through: Ray started by the case, even where another test left one up
    real_init = ray.init
    monkeypatch.setattr(ray, "init", lambda *a, **kw: (ray_inits.append(kw), real_init(*a, **kw))[1])
    ray_was_up = ray.is_initialized()
    try:
        code = ENTRY[entry]([a.replace("{tmp}", str(tmp_path)) for a in argv])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out = capsys.readouterr()
    err = out.err.strip()
    assert code == 2, out
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert message.replace("{tmp}", str(tmp_path)) in err, err
    assert "weights_only=False" not in err and "the payload ran" not in out.out + err
    assert _snapshot(tmp_path) == before  # no mlflow.db, no ray_results, no study, no output folder
    assert ray_inits == [] and ray.is_initialized() == ray_was_up


def test_the_table_covers_every_entry_point():
    counts = {e: sum(1 for c in CASES if c[0] == e) for e in ENTRY}
    assert len(CASES) >= 60 and min(counts.values()) >= 7, counts


def test_existing_experiment_needs_resume(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "ray_results" / "t2t-search").mkdir(parents=True)
    (tmp_path / "ray_results" / "t2t-search" / "tuner.pkl").write_bytes(b"x")
    assert search_main([]) == 2
    assert "experiment 't2t-search' already exists" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ray_results"]


def test_address_auto_to_a_dead_cluster_is_bounded(tmp_path, monkeypatch, capsys):
    """``--address auto`` resolves as ``ray.init`` would (here RAY_ADDRESS): a dead port is one line, not minutes."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")
    assert search_main(["--address", "auto"]) == 2
    err = capsys.readouterr().err.strip()
    # Ray names loopback by the node's own address, as ray.init would connect to it
    assert err.startswith("error: --address auto: no Ray cluster answers at") and ":9 within" in err, err
    assert "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_resources_name_what_a_trial_asks_and_what_the_cluster_has(ray_local, caplog):
    from search.plugins.resources import ResourceError, check_resources

    nodes = ray_local.nodes()  # the real local Ray: 2 CPUs, no GPU
    check_resources(1, 0, nodes, autoscaling=False)
    with pytest.raises(ResourceError, match=r"search.cpus_per_trial=3 but the largest node has 2 CPUs"):
        check_resources(3, 0, nodes, autoscaling=False)
    with pytest.raises(ResourceError, match=r"search.gpus_per_trial=1 but the largest node has 0 GPUs"):
        check_resources(1, 1, nodes, autoscaling=False)
    with caplog.at_level(logging.WARNING):
        check_resources(1, 1, nodes, autoscaling=True)  # an autoscaler may add a GPU node: wait, and say so
    assert "search.time_budget_s" in caplog.text
    check_resources(2, 0, nodes, autoscaling=False, workers=2)  # a trial of two 1-CPU workers fits
    check_resources(1, 0, nodes, autoscaling=False, workers=2)  # or of two half-CPU workers
    expected = r"search.workers_per_trial=3 workers of 1 CPUs each, but the cluster's nodes hold 2: no trial could"
    with pytest.raises(ResourceError, match=expected):
        check_resources(3, 0, nodes, autoscaling=False, workers=3)
    with pytest.raises(ResourceError, match=r"workers of 1 CPUs and 1 GPUs each, but the cluster's nodes hold 0"):
        check_resources(2, 2, nodes, autoscaling=False, workers=2)


@pytest.mark.processes
def test_a_trial_no_node_can_place_is_refused_before_any_run(tmp_path):
    """Knowable only once Ray is up: checked then, before the study, the results folder or an MLflow run exist.
    A subprocess: it starts its own local Ray, whatever this session has up."""
    from tests.conftest import run_search

    work = tmp_path / "work"
    work.mkdir()
    log = tmp_path / "search.log"
    args = ["--smoke-test", "--set", "search.cpus_per_trial=512"]
    assert run_search(work, *args, log=str(log), timeout_s=120, new_store=True) == 2
    lines = log.read_text().strip().splitlines()
    assert lines[-1].startswith("error: search.cpus_per_trial=512 but the largest node has"), lines[-5:]
    assert "Traceback" not in log.read_text()
    assert list(work.iterdir()) == []  # no mlflow.db, no ray_results, no study
