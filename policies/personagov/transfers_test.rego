package personagov.transfers_test

import data.personagov.fixtures_test as f
import data.personagov.transfers
import rego.v1

# Art. 45: same region or adequacy.
test_adequacy_allows if {
	transfers.allowed("EU", "EU-DE")
	transfers.allowed("UK", "EU-FR")
	transfers.allowed("EU", "UK")
}

# Art. 46: a named mechanism allows; it is recorded as an obligation.
test_mechanism_allows_and_is_recorded if {
	transfers.allowed("EU", "SG")
	"transfer_mechanism:intra_group_binding_corporate_rules" in transfers.obligations with input as f.kyc("SG", f.compliance)
}

# Neither: denied.
test_no_adequacy_no_mechanism_denies if {
	not transfers.allowed("US", "BR")
	not transfers.allowed("SG", "EU-DE")
	"transfer.no_adequacy_or_mechanism" in transfers.deny with input as f.marketing("BR", f.actor("x", ["regional_analyst"], "US", ["BR"]))
}

test_unknown_jurisdiction_is_not_a_destination if {
	not transfers.allowed("EU", "MARS")
}

# A jurisdiction declared by the workspace overlay decides like a shipped one.
overlay := {"US-TX": {"country": "US", "region": "US", "regime": "us_baseline"}, "CH": {"country": "CH", "region": "CH", "regime": "gdpr", "digital_consent_age": 16, "adequacy": ["EU", "UK"]}}

test_overlay_jurisdiction_decides_without_rego_changes if {
	tx := object.union(f.marketing("US-TX", f.actor("a", ["regional_analyst"], "US", ["US-TX"])), {"jurisdiction_data": overlay})
	d := data.personagov.decision.decision with input as tx
	d.allow
	d.regime == "us_baseline"
	ch := object.union(f.marketing("CH", f.actor("b", ["regional_analyst"], "EU", ["CH"])), {"jurisdiction_data": overlay})
	c := data.personagov.decision.decision with input as ch
	c.allow
	some r in c.subject_exclusions
	r.reason == "gdpr.child"
	r.condition.any[0].value == 16
}

test_undeclared_jurisdiction_still_denied if {
	d := data.personagov.decision.decision with input as f.marketing("US-TX", f.actor("a", ["regional_analyst"], "US", ["US-TX"]))
	"jurisdiction.unknown" in d.deny
}

test_overlay_adequacy_is_per_jurisdiction_region if {
	ch := object.union(f.marketing("CH", f.actor("b", ["regional_analyst"], "SG", ["CH"])), {"jurisdiction_data": overlay})
	"transfer.no_adequacy_or_mechanism" in data.personagov.transfers.deny with input as ch
}
