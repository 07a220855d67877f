"""The online prediction server: app, routing, the request path, micro-batching, protocols.

Its public names (`create_app`, `serve`, `serve_deployments`, `plan_deployments`) are
re-exported by `loopline.serving`; this package's `__init__` imports nothing, so that
importing one of its modules does not load the others.
"""
