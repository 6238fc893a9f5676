"""IntegrationDeliveryLog and the TeamsDeliveryWorker."""
