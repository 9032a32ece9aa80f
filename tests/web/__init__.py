"""Pages driven through Flask's test client, by blueprint; here what crosses blueprints."""
