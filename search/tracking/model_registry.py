"""The search's winner in MLflow's Model Registry: a new version of the model named after the experiment, with the
alias ``champion`` (``models:/NAME@champion``), its files a run's ``model/`` artifacts (``model.pt``, loadable with
``t2t.load_pretrained``, and its training ``config.json``): the final phase's winner's best run, or without a final
phase the search's best trial."""

from __future__ import annotations

import logging

from contract.tracking import CHAMPION_ALIAS, MODEL_ARTIFACTS, MODEL_WEIGHTS_FILE
from search.tracking.tracker import MlflowTracker

log = logging.getLogger(__name__)


def champion_uri(model_name: str) -> str:
    """The registered winner's URI: ``models:/NAME@champion``."""
    return f"models:/{model_name}@{CHAMPION_ALIAS}"


def _has_weights(client, run_id: str) -> bool:
    return any(f.path.endswith(MODEL_WEIGHTS_FILE) for f in client.list_artifacts(run_id, MODEL_ARTIFACTS))


def register_best(tracker: MlflowTracker, run_id: str | None, tags: dict[str, str], model_name: str) -> str | None:
    """Register the weights of run ``run_id`` (logged by ``results.log_weights``) with ``tags`` and point the alias
    at them; the version, or None when the run has no weights. A failure only warns: the weights stay on the run."""
    from mlflow.exceptions import MlflowException

    client = tracker.client
    try:
        if run_id is None or not _has_weights(client, run_id):
            return None
        try:
            client.create_registered_model(model_name, description="T2T-ViT: the winner of each search")
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = client.create_model_version(
            model_name, source=f"runs:/{run_id}/{MODEL_ARTIFACTS}", run_id=run_id, tags=tags
        ).version
        client.set_registered_model_alias(model_name, CHAMPION_ALIAS, version)
    except Exception as e:
        log.warning("could not register the winner's weights as %s: %s", champion_uri(model_name), e)
        return None
    return str(version)
