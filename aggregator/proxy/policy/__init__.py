"""Policy: who may do what (rbac), on which targets (targets, catalog), decided for one document (authz)."""
