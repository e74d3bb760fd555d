"""Data that ships with adamlab; see README.md in this folder for sources and licences."""
