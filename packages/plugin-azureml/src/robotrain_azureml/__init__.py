"""Azure Machine Learning platform for robotrain."""
