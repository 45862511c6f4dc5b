"""The command-centre console: a web page served by the gateway at ``/console/``."""
