"""The bundled samples: YAML pipelines under pipelines/ and the Python assets that read their tables."""
