"""In-memory fakes of the ports, for unit tests and the demo."""
