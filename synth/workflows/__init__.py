"""Jobs over whole datasets: the resumable runner (generate, convert), sharding, validate,
merge, the ASR check and timeline statistics."""
