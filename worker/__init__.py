"""bplab's Celery worker: the app (worker.app), its configuration (worker.config) and the thin
tasks (worker.tasks) that hand run ids to service.execution. Start it with `bplab worker`."""
