# polyingress's conformance kit: its options and fixtures (live_world, polyingress_backend).
pytest_plugins = ["polyingress.testing"]
