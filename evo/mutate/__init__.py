"""Mutation: operators that propose one hypothesis and one edit to a parent program (offline or
through an LLM), the edit formats, the prompt, and the validation of every child."""
