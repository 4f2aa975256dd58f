"""``python -m trainables.train``: train one configuration without Ray.

    python -m trainables.train                                  # the embedded default: digits, ~1 minute on 2 CPUs
    python -m trainables.train --config configs/cifar10.yaml --set optim.lr=1e-3 --output-dir outputs/c10
    python -m trainables.train --output-dir outputs/c10 --resume  # continue from its checkpoint
    python -m trainables.train --schedule schedule.json           # replay a population member's schedule

Writes ``DIR/checkpoint.pt`` (everything needed to resume) after every epoch, ``DIR/best_model.pt`` (the weights
of the best epoch as they were evaluated: the EMA's with ``train.ema_decay``; loadable with ``t2t.load_pretrained``)
and ``DIR/metrics.json`` (status, final and best metrics, the history and the config; with ``train.evaluate_test``
the final metrics include the test split's).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from contract import metrics as M
from contract.cli import Parser, add_config_arguments
from contract.status import COMPLETED, DIVERGED, RUNNING

if TYPE_CHECKING:
    from contract.schedule import Schedule
    from trainables.loop import Trainer

log = logging.getLogger("trainables.train")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; argparse's own errors exit 2."""
    parser = Parser(prog="python -m trainables.train", description=__doc__.split("\n")[0])
    add_config_arguments(parser, "YAML config (sections model, data, optim, train)", "optim.lr=0.001")
    parser.add_argument("--output-dir", default="outputs/train", help="where checkpoint and metrics go")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output-dir")
    parser.add_argument("--schedule", help="a schedule.json to replay: each epoch trains with the config it names")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """``python -m trainables.train``: the exit code (0 done, 1 diverged, 2 bad input, 130 Ctrl-C)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from trainables.data import DataError
    from trainables.yaml_reader import YamlError

    try:
        trainer, follow = start(args)
    except (DataError, ValueError, RuntimeError, YamlError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = trainer.cfg
    log.info(
        "training %s on %s (%s) for %d epochs: %.2fM parameters, %.1f MMACs/image -> %s",
        cfg.model.name,
        cfg.data.name,
        trainer.device,
        cfg.train.epochs,
        trainer.cost.params / 1e6,
        trainer.cost.macs / 1e6,
        out,
    )
    return train(trainer, out, quiet=args.quiet, follow=follow)


def start(args: argparse.Namespace) -> tuple[Trainer, Schedule | None]:
    """The trainer of the run ``args`` name, resumed from its checkpoint with ``--resume``, and the schedule it
    follows (``--schedule``).

    A usage problem (bad config, a run to overwrite, nothing to resume, missing data) raises ``ValueError``,
    ``DataError`` or ``RuntimeError`` with a one-line message.
    """
    from trainables.loop import Trainer
    from trainables.preflight import preflight

    cfg, state, follow = preflight(args)
    trainer = Trainer(cfg)
    if state is not None and state["epoch"] >= cfg.train.epochs:
        changed = trainer.check_continues(state["config"])
        if changed:  # nothing would train with them, yet metrics.json would record them
            raise ValueError(
                f"--resume: {args.output_dir} completed its {state['epoch']} epochs: nothing is left to train with "
                f"other values of {', '.join(changed)}; start a new --output-dir"
            )
    if state is not None:
        try:
            trainer.load_state_dict(state)
        except (KeyError, TypeError, RuntimeError) as e:
            raise ValueError(
                f"--resume: {args.output_dir} holds a checkpoint that does not fit this run ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}): start a new --output-dir"
            ) from None
    return trainer, follow


def train(trainer: Trainer, out: Path, quiet: bool = False, follow: Schedule | None = None) -> int:
    """Run the remaining epochs (each with the config ``follow`` gives it, if any), writing checkpoint, best weights
    and metrics into ``out`` after each one.

    Returns the exit status: 0 done, 1 diverged, 130 interrupted (continue with ``--resume``).
    """
    from tqdm import tqdm

    from trainables.checkpoint import CHECKPOINT_FILE, atomic_save, atomic_write_json
    from trainables.loop import Diverged, following

    def write_metrics(status: str, reason: str | None = None) -> None:
        summary = {M.STATUS: status, **({M.REASON: reason} if reason else {}), **trainer.summary()}
        record = {**summary, "history": trainer.history, "config": trainer.cfg.to_dict()}
        atomic_write_json(record, out / "metrics.json")

    epochs = trainer.cfg.train.epochs
    bar = tqdm(total=epochs, initial=trainer.epoch, unit="epoch", disable=quiet, file=sys.stderr)
    try:
        while not trainer.done:
            trainer = following(trainer, follow)
            row = trainer.run_epoch()
            atomic_save(trainer.state_dict(), out / CHECKPOINT_FILE)
            if trainer.best[M.EPOCH] == trainer.epoch:
                atomic_save(trainer.eval_model.state_dict(), out / "best_model.pt")
            write_metrics(COMPLETED if trainer.done else RUNNING)
            bar.set_postfix(
                loss=f"{row[M.TRAIN_LOSS]:.3f}", val_acc=f"{row[M.VAL_ACC]:.4f}", best=f"{row[M.BEST_VAL_ACC]:.4f}"
            )
            bar.update()
    except Diverged as e:
        write_metrics(DIVERGED, str(e))
        print(f"error: the run diverged: {e}; lower optim.lr or set optim.clip_grad", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted after epoch {trainer.epoch}; continue with --resume --output-dir {out}", file=sys.stderr)
        return 130
    finally:
        bar.close()
    best, last = trainer.best, trainer.history[-1]
    test = f"; test_acc {last[M.TEST_ACC]:.4f}, test_loss {last[M.TEST_LOSS]:.4f}" if M.TEST_ACC in last else ""
    log.info(
        "done: best val_acc %.4f at epoch %d (final %.4f)%s; %s",
        best[M.VAL_ACC],
        best[M.EPOCH],
        last[M.VAL_ACC],
        test,
        out / "metrics.json",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
