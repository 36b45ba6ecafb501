"""Access requests (staff ask, the customer or staff approvers answer) and break-glass reviews."""
