"""Persona experiments: design (deterministic keyed assignment, power), analysis (per persona
and arm: rate, lift, interval, the right test, multiple-comparison correction, ROI) and
promotion of a persona version to "validated" when its experiment met the declared criteria.

    design_experiment(ws, DesignRequest) -> dict        engine.experiment.design
    analyse_experiment(ws, name, source, actor, ...) -> dict   engine.experiment.analyse
    promote_experiment(ws, name, actor) -> dict         engine.experiment.promote
    is_validated(ws, jurisdiction, purpose, version_id) -> bool
"""
