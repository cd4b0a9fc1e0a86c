"""Assemble the alert setup from loaded specs; unknown channels and misplaced rules are file:line errors."""

from __future__ import annotations

from aggregator.pipelines.alerts_spec import AlertsConfig, AlertSetup
from aggregator.pipelines.load import SourceFile, SpecError, SpecErrors, Specs
from aggregator.pipelines.spec import SourceSpec, TransformSpec


def build_alert_setup(specs: Specs) -> AlertSetup:
    """The one global `alerts:` block plus every pipeline's rules and freshness; raises SpecErrors."""
    setup, errors = alert_setup_partial(specs)
    if errors:
        raise SpecErrors(errors)
    return setup


def alert_setup_partial(specs: Specs) -> tuple[AlertSetup, list[SpecError]]:
    """Like build_alert_setup, but a rule with a problem is left out and reported instead of failing all."""
    errors: list[SpecError] = []
    config, config_file = AlertsConfig(), None
    for sf in specs.files:
        if sf.spec.alerts is None:
            continue
        if config_file is not None:
            errors.append(sf.error(("alerts",), f"the global `alerts:` block is already declared in {config_file.path}; "
                                                "declare it once (e.g. alerts.yaml) and use per-pipeline `alerts:` "
                                                "for the rest"))
            continue
        config, config_file = sf.spec.alerts, sf
    declared = sorted(config.channels)

    def check_channels(sf: SourceFile, loc: tuple[str | int, ...], names: list[str]) -> bool:
        ok = True
        for j, name in enumerate(names):
            if name not in config.channels:
                ok = False
                errors.append(sf.error((*loc, "channels", j),
                                       f"unknown channel {name!r}; declared under alerts.channels: "
                                       f"{', '.join(declared) or 'none'}"))
        return ok

    if config_file is not None:
        good = [rule for i, rule in enumerate(config.rules)
                if check_channels(config_file, ("alerts", "rules", i), rule.channels)]
        config = config.model_copy(update={"rules": good})
    pipeline_rules = {}
    freshness = {}
    for pipeline, sf, index in specs.pipelines:
        if pipeline.alerts is not None:
            own = []
            for i, rule in enumerate(pipeline.alerts.rules):
                loc = ("pipelines", index, "alerts", "rules", i)
                ok = check_channels(sf, loc, rule.channels)
                if rule.pipelines != ["*"]:
                    ok = False
                    errors.append(sf.error((*loc, "pipelines"), "a pipeline's own rule always covers that pipeline; "
                                                                "`pipelines:` belongs in the global alerts.rules"))
                if rule.when == "spec_error":
                    ok = False
                    errors.append(sf.error((*loc, "when"), "spec_error rules are global (a broken file has no "
                                                         "pipeline to read them from); declare them in alerts.rules"))
                if ok:
                    own.append(rule)
            pipeline_rules[pipeline.name] = (own, pipeline.alerts.inherit)
        items: list[SourceSpec | TransformSpec] = [*pipeline.sources, *pipeline.transforms]
        for item in items:
            if item.freshness is not None:
                freshness[f"{pipeline.name}/{item.name}"] = (pipeline.name, item.freshness)
    return AlertSetup(config=config, pipeline_rules=pipeline_rules, freshness=freshness), errors
