package sqlstore_test

import (
	"testing"

	"github.com/openxaa/xaa/internal/store/storetest"
)

func TestConformanceIdPSQLite(t *testing.T) {
	t.Parallel()
	storetest.RunIdP(t, openSQLite(t))
}

func TestConformanceIdPPostgres(t *testing.T) {
	t.Parallel()
	storetest.RunIdP(t, openPostgres(t))
}
