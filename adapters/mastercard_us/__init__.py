"""mastercard-us: Mastercard Open Finance US (the Finicity platform)."""
