"""The output directory: where files go (`paths`), the directory itself on
any lsst-resources URI (`store`), writing local files without partial files
(`atomic`), the per-writer record files (`ledger`), the manifests built from
the records (`manifests`) and FITS stamps (`fits_stamps`).
"""
