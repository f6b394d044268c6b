"""SG-MCMC and SGD samplers: one algorithm per module, pure init/step over a chain dimension."""
