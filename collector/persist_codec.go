package collector

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"unsafe"
)

// The state file's payload is the state itself, every field of it, encoded
// by reflection: a field added to the state is persisted without anyone
// having to remember it (the round-trip test compares whole states), and
// the state's type layout, hashed into the file's header, makes a file
// written by a build with another layout refused instead of misread.
//
// Encoding: bool one byte; integers varint; floats their 8 IEEE bytes;
// strings length and bytes; arrays their elements; structs their fields in
// order; slices, maps and pointers 0 for nil, else length+1 (1 for a
// pointer) and their elements. Nothing else (funcs, channels, interfaces)
// can be in the state. Fields tagged persist:"-" (settings, not synced
// data) are left out.

type stateEncoder struct{ b []byte }

func (e *stateEncoder) uvarint(n uint64) { e.b = binary.AppendUvarint(e.b, n) }

func (e *stateEncoder) value(v reflect.Value) error {
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			e.b = append(e.b, 1)
		} else {
			e.b = append(e.b, 0)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.b = binary.AppendVarint(e.b, v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		e.uvarint(v.Uint())
	case reflect.Float32, reflect.Float64:
		e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(v.Float()))
	case reflect.String:
		e.uvarint(uint64(v.Len()))
		e.b = append(e.b, v.String()...)
	case reflect.Array:
		for i := range v.Len() {
			if err := e.value(v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if skipped(v.Type().Field(i)) {
				continue
			}
			if err := e.value(v.Field(i)); err != nil {
				return fmt.Errorf("%s.%s: %w", v.Type(), v.Type().Field(i).Name, err)
			}
		}
	case reflect.Slice:
		if v.IsNil() {
			e.uvarint(0)
			return nil
		}
		e.uvarint(uint64(v.Len()) + 1)
		for i := range v.Len() {
			if err := e.value(v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if v.IsNil() {
			e.uvarint(0)
			return nil
		}
		e.uvarint(uint64(v.Len()) + 1)
		for it := v.MapRange(); it.Next(); {
			if err := e.value(it.Key()); err != nil {
				return err
			}
			if err := e.value(it.Value()); err != nil {
				return err
			}
		}
	case reflect.Pointer:
		if v.IsNil() {
			e.uvarint(0)
			return nil
		}
		e.uvarint(1)
		return e.value(v.Elem())
	default:
		return fmt.Errorf("cannot persist a %s", v.Type())
	}
	return nil
}

type stateDecoder struct{ b []byte }

var errShort = errors.New("payload ends early")

func (d *stateDecoder) uvarint() (uint64, error) {
	n, size := binary.Uvarint(d.b)
	if size <= 0 {
		return 0, errShort
	}
	d.b = d.b[size:]
	return n, nil
}

// length reads the length of a slice, map or string, which cannot exceed
// the bytes left (every element takes one at least): a corrupt length
// cannot make the decoder allocate more than the file holds.
func (d *stateDecoder) length(nilable bool) (n int, isNil bool, err error) {
	u, err := d.uvarint()
	if err != nil {
		return 0, false, err
	}
	if nilable {
		if u == 0 {
			return 0, true, nil
		}
		u--
	}
	if u > uint64(len(d.b)) {
		return 0, false, fmt.Errorf("length %d exceeds the %d bytes left", u, len(d.b))
	}
	return int(u), false, nil
}

// value decodes into v, which must be addressable; unexported fields are
// set through their address.
func (d *stateDecoder) value(v reflect.Value) error {
	v = reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
	switch v.Kind() {
	case reflect.Bool:
		if len(d.b) == 0 || d.b[0] > 1 {
			return errors.New("bad bool")
		}
		v.SetBool(d.b[0] == 1)
		d.b = d.b[1:]
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, size := binary.Varint(d.b)
		if size <= 0 {
			return errShort
		}
		if v.OverflowInt(n) {
			return fmt.Errorf("%d overflows %s", n, v.Type())
		}
		d.b = d.b[size:]
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := d.uvarint()
		if err != nil {
			return err
		}
		if v.OverflowUint(n) {
			return fmt.Errorf("%d overflows %s", n, v.Type())
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		if len(d.b) < 8 {
			return errShort
		}
		v.SetFloat(math.Float64frombits(binary.LittleEndian.Uint64(d.b)))
		d.b = d.b[8:]
	case reflect.String:
		n, _, err := d.length(false)
		if err != nil {
			return err
		}
		v.SetString(string(d.b[:n]))
		d.b = d.b[n:]
	case reflect.Array:
		for i := range v.Len() {
			if err := d.value(v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if skipped(v.Type().Field(i)) {
				continue
			}
			if err := d.value(v.Field(i)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		n, isNil, err := d.length(true)
		if err != nil || isNil {
			return err
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			if err := d.value(s.Index(i)); err != nil {
				return err
			}
		}
		v.Set(s)
	case reflect.Map:
		n, isNil, err := d.length(true)
		if err != nil || isNil {
			return err
		}
		m := reflect.MakeMapWithSize(v.Type(), n)
		for range n {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			if err := d.value(k); err != nil {
				return err
			}
			if err := d.value(e); err != nil {
				return err
			}
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Pointer:
		n, err := d.uvarint()
		if err != nil || n == 0 {
			return err
		}
		if n != 1 {
			return errors.New("bad pointer")
		}
		p := reflect.New(v.Type().Elem())
		if err := d.value(p.Elem()); err != nil {
			return err
		}
		v.Set(p)
	default:
		return fmt.Errorf("cannot decode a %s", v.Type())
	}
	return nil
}

// typeLayout describes t as the codec sees it: the kinds, names and order of
// all it holds. Its hash is in the file header.
func typeLayout(t reflect.Type) string {
	var b strings.Builder
	var walk func(t reflect.Type, path map[reflect.Type]bool)
	walk = func(t reflect.Type, path map[reflect.Type]bool) {
		if path[t] {
			b.WriteString(t.String()) // a cycle: the name says enough
			return
		}
		path[t] = true
		defer delete(path, t)
		switch t.Kind() {
		case reflect.Struct:
			b.WriteString(t.String() + "{")
			for i := range t.NumField() {
				if skipped(t.Field(i)) {
					continue
				}
				b.WriteString(t.Field(i).Name + " ")
				walk(t.Field(i).Type, path)
				b.WriteString(";")
			}
			b.WriteString("}")
		case reflect.Slice, reflect.Pointer:
			b.WriteString(t.Kind().String() + " ")
			walk(t.Elem(), path)
		case reflect.Array:
			fmt.Fprintf(&b, "[%d]", t.Len())
			walk(t.Elem(), path)
		case reflect.Map:
			b.WriteString("map[")
			walk(t.Key(), path)
			b.WriteString("]")
			walk(t.Elem(), path)
		default:
			b.WriteString(t.Kind().String())
		}
	}
	walk(t, map[reflect.Type]bool{})
	return b.String()
}

// skipped reports whether a field is left out of the file.
func skipped(f reflect.StructField) bool { return f.Tag.Get("persist") == "-" }
