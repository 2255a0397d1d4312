"""Thredd Open Banking (US instant account verification on Mastercard Finicity): adapter and simulator."""
