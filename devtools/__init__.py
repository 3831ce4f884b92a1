"""Developer tooling: local AWS from template.yaml, sample data, handler invocation, the demo."""
