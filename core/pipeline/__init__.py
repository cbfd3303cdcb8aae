"""The pipeline: Kubernetes objects in, the route model out.

``store`` (a consistent snapshot of the objects) -> ``validate`` / ``annotations`` /
``requestpath`` (what the Kubernetes specs allow) -> ``translate`` (objects to rules, backends,
certificates) -> ``builder`` (the one Builder: per host, per object, full or incremental) ->
``model`` (the frozen RouteModel and ``RouteModel.answer``, the semantics in one function) ->
``diff`` (what changed, for the backend). Nothing here starts a process or talks to a proxy.
"""
