"""Maps (rules/infer.smk, mosaic.smk): block inference with onnxruntime, the label prior, chunk manifests
and the Cloud-Optimized GeoTIFF mosaics."""
