"""Onboarding with providers: registering the gateway's applications (mastercard-au) and clients (stripe-uk)."""
