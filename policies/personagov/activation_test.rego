package personagov.activation_test

import data.personagov.activation
import rego.v1

analyst := {"id": "a1", "roles": ["regional_analyst"], "home_region": "EU", "jurisdictions": ["EU-DE"]}

officer := {"id": "c1", "roles": ["compliance_officer"], "home_region": "EU", "jurisdictions": []}

good_version := {"validity": "valid", "approved": true, "validated": false}

cms_eu := {"name": "cms", "region": "EU", "channel": "content", "purposes": [], "require_validated": false}

activation_input(dest, ver) := {
	"actor": analyst,
	"action": "activate",
	"resource": {
		"jurisdiction": "EU-DE",
		"purpose": "marketing_segmentation",
		"destination": dest,
		"version": ver,
		"consent_rechecked": true,
		"obligations": [],
	},
}

test_activation_of_approved_valid_version_in_region_allowed if {
	d := activation.decision with input as activation_input(cms_eu, good_version)
	d.allow
	d.suppress_channel == false
}

test_destination_outside_region_without_mechanism_denied if {
	dest := object.union(cms_eu, {"region": "SG"})
	d := activation.decision with input as activation_input(dest, good_version)
	not d.allow
	"transfer.destination_outside_region" in d.deny
}

test_destination_with_listed_mechanism_allowed if {
	dest := object.union(cms_eu, {"region": "US", "transfer_mechanism": "eu_us_data_privacy_framework"})
	d := activation.decision with input as activation_input(dest, good_version)
	d.allow
}

test_unlisted_mechanism_does_not_count if {
	dest := object.union(cms_eu, {"region": "US", "transfer_mechanism": "we_promise"})
	d := activation.decision with input as activation_input(dest, good_version)
	"transfer.destination_outside_region" in d.deny
}

test_unapproved_or_invalid_version_denied if {
	d1 := activation.decision with input as activation_input(cms_eu, {"validity": "valid", "approved": false})
	"activation.version_not_approved" in d1.deny
	d2 := activation.decision with input as activation_input(cms_eu, {"validity": "invalid", "approved": true})
	"activation.version_not_valid" in d2.deny
}

test_missing_version_fields_deny_not_undefined if {
	d := activation.decision with input as activation_input(cms_eu, {})
	not d.allow
	"activation.version_not_valid" in d.deny
	"activation.version_not_approved" in d.deny
}

test_validated_required_by_destination if {
	dest := object.union(cms_eu, {"require_validated": true})
	d := activation.decision with input as activation_input(dest, good_version)
	"activation.version_not_validated" in d.deny
}

test_consent_must_be_rechecked if {
	inp := activation_input(cms_eu, good_version)
	d := activation.decision with input as object.union(inp, {"resource": object.union(inp.resource, {"consent_rechecked": false})})
	"activation.consent_not_rechecked" in d.deny
}

test_suppressed_channel_stays_suppressed if {
	dest := object.union(cms_eu, {"channel": "phone"})
	inp := activation_input(dest, good_version)
	d := activation.decision with input as object.union(inp, {"resource": object.union(inp.resource, {"obligations": ["suppress_channel:phone"]})})
	d.allow
	d.suppress_channel
	d.suppress_reasons == ["pdpa.do_not_call"]
}

test_unmapped_channel_suppression_denied if {
	dest := object.union(cms_eu, {"channel": "fax"})
	inp := activation_input(dest, good_version)
	d := activation.decision with input as object.union(inp, {"resource": object.union(inp.resource, {"obligations": ["suppress_channel:fax"]})})
	"activation.channel_suppression_unmapped" in d.deny
}

test_kyc_results_never_activated if {
	inp := activation_input(cms_eu, good_version)
	d := activation.decision with input as object.union(inp, {"resource": object.union(inp.resource, {"purpose": "kyc_aml"})})
	"activation.kyc_purpose_not_activatable" in d.deny
}

test_purpose_not_declared_for_destination if {
	dest := object.union(cms_eu, {"purposes": ["credit_risk_segmentation"]})
	d := activation.decision with input as activation_input(dest, good_version)
	"activation.purpose_not_declared_for_destination" in d.deny
}

test_officer_cannot_activate_and_analyst_cannot_promote if {
	inp := activation_input(cms_eu, good_version)
	d := activation.decision with input as object.union(inp, {"actor": officer})
	"access.role_not_permitted" in d.deny
	a := activation.authz with input as {"actor": analyst, "action": "experiment_promote", "resource": {"jurisdiction": "EU-DE", "designed_by": "a2"}}
	"access.role_not_permitted" in a.deny
}

test_promotion_needs_a_second_person if {
	lead := {"id": "c1", "roles": ["compliance_officer", "regional_analyst"], "home_region": "EU", "jurisdictions": ["EU-DE"]}
	a := activation.authz with input as {"actor": lead, "action": "experiment_promote", "resource": {"jurisdiction": "EU-DE", "designed_by": "c1"}}
	"experiment.four_eyes_same_person" in a.deny
	b := activation.authz with input as {"actor": officer, "action": "experiment_promote", "resource": {"jurisdiction": "EU-DE", "designed_by": "a1"}}
	b.allow
}

test_analyst_designs_only_in_own_jurisdiction if {
	a := activation.authz with input as {"actor": analyst, "action": "experiment_design", "resource": {"jurisdiction": "EU-DE"}}
	a.allow
	b := activation.authz with input as {"actor": analyst, "action": "experiment_design", "resource": {"jurisdiction": "UK"}}
	"access.jurisdiction_not_assigned" in b.deny
}

test_unknown_action_and_empty_input_denied if {
	a := activation.authz with input as {"actor": analyst, "action": "launch_rockets", "resource": {"jurisdiction": "EU-DE"}}
	"access.unknown_action" in a.deny
	b := activation.authz with input as {}
	not b.allow
	"access.unknown_actor" in b.deny
}
