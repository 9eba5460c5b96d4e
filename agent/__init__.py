"""The fieldmon agent: runs the inspection checklist against this host and the devices next
to it, and publishes results over MQTT without losing any.

Heavy protocol stacks (SNMP, SSH) load only when a target needs them.
"""
