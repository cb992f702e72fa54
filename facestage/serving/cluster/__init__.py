"""``facestage serve --replicas N``: the server as a Ray Serve application.

    launcher.py     starts Redis (or uses --redis URL) and a local Ray, deploys, waits, tears down
    deployment.py   the Serve deployment: one ``App`` per replica behind a FastAPI ingress
    ingress.py      Serve's HAProxy direct ingress (default) or its Python proxy: the environment Serve reads
    front.py        FastAPI WebSocket/HTTP ↔ the existing ConnectionCore and HTTP routes (no second protocol)
    registry.py     replicas announce {pid, sessions, load} in Redis for GET /healthz
    redis_server.py a throw-away local redis-server on a free port

Importing this package imports nothing heavy; Ray is imported by ``launcher`` and ``deployment`` only.
See docs/cluster.md.
"""
