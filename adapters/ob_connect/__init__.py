"""ob-connect: Mastercard Open Banking Connect, the EU/UK hub to many banks (AIS and PIS)."""
