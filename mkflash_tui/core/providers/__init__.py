"""Card generators: any OpenAI-compatible server, or the offline generator."""
