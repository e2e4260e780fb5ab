"""MQTT support shared by outputs.mqtt and inputs.mqtt_consumer (not a plugin itself)."""
