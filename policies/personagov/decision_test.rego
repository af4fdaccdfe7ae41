package personagov.decision_test

import data.personagov.decision
import data.personagov.fixtures_test as f
import rego.v1

test_allowed_marketing_decision_shape if {
	d := decision.decision with input as f.marketing("EU-DE", f.analyst_eu)
	d.allow
	d.deny == []
	d.regime == "gdpr"
	d.subject_domain == "marketing"
	d.k_anonymity_min == 10
	d.policy_revision == data.pgov.revision
	"k_anonymity_min:10" in d.obligations
	count(d.sources) == 3
}

test_every_source_column_planned if {
	d := decision.decision with input as f.marketing("US-CA", f.analyst_us)
	every name, src in f.sources {
		every col, _ in src.columns {
			d.sources[name].columns[col].action
		}
	}
}

# CCPA nulling is expanded to the surviving sensitive_pi columns of each source.
test_nulling_lists_surviving_columns_per_source if {
	d := decision.decision with input as f.marketing("US-CA", f.analyst_us)
	d.sources.crm.nullings[0].columns == ["precise_geolocation"]
	d.sources.crm.nullings[0].reason == "ccpa.limit_sensitive_pi"
	d.sources.transactions.nullings == []
}

test_denied_decision_lists_reasons if {
	d := decision.decision with input as f.marketing("UK", f.analyst_eu)
	not d.allow
	d.deny == ["access.jurisdiction_not_assigned"]
}

test_malformed_input_denied if {
	d := decision.decision with input as {"actor": f.analyst_eu, "jurisdiction": "EU-DE", "purpose": "marketing_segmentation", "as_of": "soon"}
	not d.allow
	d.deny == ["input.invalid:as_of", "input.invalid:roles", "input.invalid:sources", "input.invalid:subjects"]
	d.sources == {}
}

# A rule that needs a role the workspace does not declare denies, naming role and rule.
test_missing_role_denies_naming_role_and_rule if {
	req := f.with_roles(f.marketing("US-CA", f.analyst_us), object.remove(f.roles, ["gpc"]))
	d := decision.decision with input as req
	not d.allow
	d.deny == ["role.missing:gpc:ccpa.gpc_signal"]
	d.missing_roles == [{"role": "gpc", "rule": "ccpa.gpc_signal"}]
}

# Alternative channels of one right: one of them is enough; none is a deny naming both.
test_one_of_alternative_roles_is_enough if {
	one := f.with_roles(f.marketing("EU-DE", f.analyst_eu), object.remove(f.roles, ["opt_out_requested"]))
	d1 := decision.decision with input as one
	d1.allow
	none := f.with_roles(f.marketing("EU-DE", f.analyst_eu), object.remove(f.roles, ["opt_out_requested", "objection_direct_marketing"]))
	d2 := decision.decision with input as none
	d2.deny == ["role.missing:objection_direct_marketing|opt_out_requested:gdpr.objection"]
}

# Roles are read, never column names: a renamed column flows into the conditions.
test_conditions_read_the_declared_column if {
	req := f.with_roles(f.marketing("US-CA", f.analyst_us), object.union(f.roles, {"gpc": "browser_gpc"}))
	d := decision.decision with input as req
	d.allow
	some r in d.subject_exclusions
	r.reason == "ccpa.gpc_signal"
	r.condition.field == "browser_gpc"
}

test_kyc_needs_no_marketing_roles if {
	req := f.with_roles(f.kyc("EU-DE", f.compliance), {})
	d := decision.decision with input as req with data.personagov.kyc_ruleset.ruleset as f.stub_ruleset
	d.allow
}

test_regime_per_jurisdiction if {
	ny := decision.decision with input as f.marketing("US-NY", f.analyst_us)
	sg := decision.decision with input as f.marketing("SG", f.analyst_sg)
	br := decision.decision with input as f.marketing("BR", f.analyst_br)
	ny.regime == "us_baseline"
	sg.regime == "pdpa"
	br.regime == "lgpd"
}
