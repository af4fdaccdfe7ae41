# Experiments and activation: who may design, analyse and promote persona experiments and
# activate personas, and one decision per activation (purpose x destination x jurisdiction).
# Written to be total over its input: every field is read with object.get and a default, so
# a missing field is a refusal with a reason, never an undefined decision.
# GDPR Art. 5(1)(b), 6, 21(2)-(3), 44-46; UK GDPR Art. 44-46; LGPD Art. 33; PDPA s.26, s.43.
package personagov.activation

import data.personagov.transfers
import rego.v1

# Regional teams run campaigns and experiments in their own jurisdictions; compliance
# officers validate (promote) and may read every analysis (segregation of duties).
roles_for := {
	"experiment_design": ["regional_analyst"],
	"experiment_analyse": ["regional_analyst", "compliance_officer"],
	"experiment_promote": ["compliance_officer"],
	"activate": ["regional_analyst"],
}

anywhere_for := {
	"experiment_analyse": ["compliance_officer"],
	"experiment_promote": ["compliance_officer"],
}

action := object.get(input, "action", "")

actor := object.get(input, "actor", {})

actor_id := object.get(actor, "id", "")

actor_roles := object.get(actor, "roles", [])

resource := object.get(input, "resource", {})

jurisdiction := object.get(resource, "jurisdiction", "")

known_actor if {
	is_string(actor_id)
	actor_id != ""
	count(actor_roles) > 0
}

may_act if {
	some role in actor_roles
	role in object.get(roles_for, action, [])
}

anywhere if {
	some role in actor_roles
	role in object.get(anywhere_for, action, [])
}

assigned if jurisdiction in object.get(actor, "jurisdictions", [])

deny contains "access.unknown_actor" if not known_actor

deny contains "access.unknown_action" if not roles_for[action]

deny contains "access.role_not_permitted" if {
	known_actor
	roles_for[action]
	not may_act
}

deny contains "access.jurisdiction_not_assigned" if {
	known_actor
	not anywhere
	not assigned
}

deny contains "transfer.no_adequacy_or_mechanism" if {
	known_actor
	not transfers.allowed(object.get(actor, "home_region", ""), jurisdiction)
}

# Four eyes: the person who designed an experiment does not validate its version.
deny contains "experiment.four_eyes_same_person" if {
	action == "experiment_promote"
	object.get(resource, "designed_by", "") == actor_id
}

# ---------------------------------------------------------------- activation

activating if action == "activate"

version := object.get(resource, "version", {})

destination := object.get(resource, "destination", {})

purpose := object.get(resource, "purpose", "")

channel := object.get(destination, "channel", "")

data_region := object.get(object.get(data.pgov.jurisdictions, jurisdiction, {}), "region", "")

destination_region := object.get(destination, "region", "")

# Only approved, valid versions leave the building.
deny contains "activation.version_not_valid" if {
	activating
	object.get(version, "validity", "") != "valid"
}

deny contains "activation.version_not_approved" if {
	activating
	object.get(version, "approved", false) != true
}

deny contains "activation.version_not_validated" if {
	activating
	object.get(destination, "require_validated", false) == true
	object.get(version, "validated", false) != true
}

# Purpose limitation (Art. 5(1)(b)): a destination receives only the purposes declared for it.
deny contains "activation.purpose_not_declared_for_destination" if {
	activating
	declared := object.get(destination, "purposes", [])
	count(declared) > 0
	not purpose in declared
}

# KYC/AML results serve a legal obligation; they are never pushed to campaign systems.
deny contains "activation.kyc_purpose_not_activatable" if {
	activating
	purpose == "kyc_aml"
}

# The audience is re-checked against consent, objections and erasure at activation time
# (a persona version may be weeks old); the engine says it did, with the plan it used.
deny contains "activation.consent_not_rechecked" if {
	activating
	object.get(resource, "consent_rechecked", false) != true
}

deny contains "activation.unknown_data_region" if {
	activating
	data_region == ""
}

# Art. 44-46: a destination outside the data's region needs adequacy or a named mechanism
# that the policy data lists for this pair of regions.
destination_allowed if destination_region == data_region

destination_allowed if destination_region in object.get(data.pgov.adequacy, data_region, [])

destination_allowed if {
	some m in data.pgov.transfer_mechanisms
	m.data_region == data_region
	m.actor_region == destination_region
	m.mechanism == object.get(destination, "transfer_mechanism", "")
}

deny contains "transfer.destination_outside_region" if {
	activating
	data_region != ""
	not destination_allowed
}

# Channels the refresh plan suppressed (e.g. PDPA Do Not Call: suppress_channel:phone) stay
# suppressed: the engine removes the flagged customers from this destination's audience.
suppress_channel if {
	activating
	sprintf("suppress_channel:%s", [channel]) in object.get(resource, "obligations", [])
}

default suppress_channel := false

# Which of the refresh plan's per-customer nullings flag a customer for each channel: the
# engine removes customers matching these rules from the audience. PDPA Part IX covers
# voice calls, SMS and fax to numbers on the Do Not Call register.
channel_suppression := {
	"phone": ["pdpa.do_not_call"],
	"sms": ["pdpa.do_not_call"],
}

suppress_reasons := object.get(channel_suppression, channel, []) if suppress_channel

default suppress_reasons := []

# A suppression the policy cannot map to customers is a refusal, never a silent pass.
deny contains "activation.channel_suppression_unmapped" if {
	suppress_channel
	count(suppress_reasons) == 0
}

authz := {"allow": count(deny) == 0, "deny": sort(deny)}

decision := {
	"allow": count(deny) == 0,
	"deny": sort(deny),
	"suppress_channel": suppress_channel,
	"suppress_reasons": suppress_reasons,
}
