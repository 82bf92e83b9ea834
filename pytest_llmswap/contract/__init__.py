"""Contracts: the @llm_contract decorator, prompts, conversations, checks and invariance perturbations."""
