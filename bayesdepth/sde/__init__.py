"""SDE-BNN: Bayesian neural networks whose weights follow an SDE in depth (Xu et al. 2022)."""
