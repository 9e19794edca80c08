"""The public API for users' own training code: datasets and loaders built from a workload config,
reading through the same storage, formats, sampler and sample source as `dldriver run`.

One module per framework, each importing only its own framework: `dldriver.frameworks.pytorch`
(also `dldriver.torch`), `.tensorflow` (`dldriver.tensorflow`), `.jax` (`dldriver.jax`), and
`.measure` (a real training loop's figures as a run folder). See docs/api.md.
"""
