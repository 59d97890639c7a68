"""The HTTP side: request context, config checks, error mapping and the monitoring routes."""
