"""What a search's results say: objectives over recorded metrics, Pareto fronts, plots and
TensorBoard logs of architecture parameters. Reads results; never trains."""
