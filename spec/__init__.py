"""The kit's specification documents, shipped as package data so that the kit reads its clause table (and any
schema kept beside them) wherever it is installed."""
