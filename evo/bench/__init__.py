"""`evo bench`: measurements of evo itself, printed as a table and kept as JSON (evo.bench.command).

overhead and scale: the engine's own cost (evo.bench.throughput).
efficiency: the single-chain preset against the 4-island ring (or other presets), the same
number of evaluations, the offline operator, several seeds each; by default on the rugged knob
target (evo.bench.synthetic).
ensemble: fixed model weights against adaptive ones for the same spend (evo.bench.ensemble).
noise: the run's pooled noise estimate against a known sigma (evo.bench.noise).
prewarm: the training fraction with and without pre-warm, synthetic or real (evo.bench.prewarm).
speedup: the wall time to the single chain's best with more evaluators (evo.bench.speedup).
lineage: a synthetic lineage of N rows (default 1,000,000) in a run folder, then `evo lineage`
and `evo report` on it as separate processes, each timed, with its peak resident memory read the
way the sandbox reads an evaluation's.
"""
