// Package typednil tells a usable interface value from a nil one: the
// check an API boundary makes before it calls a method of an argument,
// since an interface holding a nil pointer (a typed nil) is not == nil
// and panics when the method dereferences it.
package typednil

import "reflect"

// Is reports whether v is nil or holds a nil pointer, map, slice,
// function, channel or interface.
func Is(v any) bool {
	if v == nil {
		return true
	}
	switch r := reflect.ValueOf(v); r.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface, reflect.UnsafePointer:
		return r.IsNil()
	}
	return false
}
