"""mastercard-au: Mastercard Open Banking Australia (CDR) on the shared Mastercard platform code."""
