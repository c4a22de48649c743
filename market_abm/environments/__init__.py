"""Scenario definitions: parameters in, model pieces (population environment, local model) out."""
