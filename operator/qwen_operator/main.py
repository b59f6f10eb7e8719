"""Entry point: `qwen-operator` runs the Kopf operator with the handlers in qwen_operator.handlers."""

from __future__ import annotations

import logging
import sys

import kopf

from .handlers.config import CONFIG


@kopf.on.startup()
def _configure(settings: kopf.OperatorSettings, **_: object) -> None:
    # The operator posts its own events (only on transitions); Kopf's per-handler success events would be
    # write calls on every trigger, and idle must be silent.
    settings.posting.enabled = False
    # No cluster-wide discovery of namespaces and CRDs: the operator serves the namespaces it is told (or all)
    # and only resources it knows, so its RBAC needs no list on namespaces or CRDs.
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.execution.max_workers = 8


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Kopf logs every handler run at INFO; with hundreds of deployments that is noise. Our own lines stay.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    from prometheus_client import start_http_server

    from .adapters.kube import load_config
    from .handlers import autoscaler, controller, indexes, loops  # noqa: F401  (registers the handlers)
    from .handlers.state import OperatorState

    # The Kubernetes client's config, explicitly: in-cluster in a pod, else the kubeconfig (Kopf logs in on its own).
    load_config()
    if CONFIG.metrics_port:
        start_http_server(CONFIG.metrics_port)
    kopf.run(
        standalone=True,
        clusterwide=not CONFIG.namespaces,
        namespaces=CONFIG.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{CONFIG.health_port}/healthz" if CONFIG.health_port else None,
        memo=kopf.Memo(operator=OperatorState()),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
