"""Augmented neural ODEs (Dupont, Doucet, Teh 2019), deterministic and Bayesian."""
