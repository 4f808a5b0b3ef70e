"""The SMS command language, its aliases, and carrying commands out."""
