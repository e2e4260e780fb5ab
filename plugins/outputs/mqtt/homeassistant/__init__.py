"""Home Assistant MQTT discovery for the instruments this collector reads."""
