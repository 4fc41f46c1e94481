"""The output directory: where files go (`paths`), writing them without
partial files (`atomic`), and the manifests built from the records
(`manifests`).
"""
