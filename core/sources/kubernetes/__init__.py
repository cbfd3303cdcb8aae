"""The Kubernetes API server as a source (``source``: list and watch into the store), and what
cluster mode adds: Events for rejected objects (``events``), Ingress status (``status``) and
leader election (``leader``)."""
