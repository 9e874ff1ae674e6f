"""Operations: what an operator and another application expect of a server (see
docs/operations.md): Prometheus metrics at ``/metrics``, signed webhooks delivered from a
transactional outbox, and server API keys with the short-lived access tokens they mint."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    from ops import fhir, live_hooks, metrics, routes, worker

    m = metrics.setup(app)
    deliverer = worker.setup(app)
    m.queues["webhooks"] = lambda: deliverer.pending
    live_hooks.setup(app)
    routes.routes.register(app)
    fhir.setup(app)
    m.queues["fhir_push"] = lambda: fhir.pusher_of(app).pending
