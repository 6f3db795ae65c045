"""Everything that trains: `tfnas.Tuner` (trials), the supernet trainer of weight-sharing
searches, checkpoints, batch-norm recalibration and export of a path to a plain model."""
